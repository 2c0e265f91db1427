/*
 * HTTP server on libmicrohttpd. One request = one request_state, made in
 * uri_cb from the raw request line (the only place "%00" in the path and the
 * query's size are visible), freed in completed_cb. The first access call
 * has the headers only: the client certificate, path, query, Content-Length
 * headers, route, method, token and declared body size are all checked
 * there, and any failure is answered at once, so nothing of the body is
 * read or buffered (libmicrohttpd then discards the rest and closes). Later
 * calls accumulate the body up to the cap (a chunked body past it is
 * drained and 413 answered); the last one calls the handler and times it.
 * libmicrohttpd copies our response buffer, so handlers' buffers are freed
 * here. A handler may instead defer: the connection is suspended and the
 * answer queued when another thread resumes it.
 *
 * With a client CA, every request is checked before routing: libmicrohttpd
 * (0.9.75, HTTPS_MEM_TRUST) only *asks* for a client certificate, and a client
 * that sends none, or one from another CA, completes the handshake and would
 * be served. So the verdict is ours: gnutls verifies the peer's chain against
 * the CA libmicrohttpd loaded, and a failure is answered 403 and the
 * connection closed. This is the one place we reach under libmicrohttpd into
 * its TLS library (gnutls, the only backend it has). The verified
 * certificate's identity (subject CN, else first DNS SAN) is read there too
 * and handed to the handler as peer_identity.
 *
 * Threads: libmicrohttpd's internal thread pool (epoll, so no FD_SETSIZE
 * ceiling), each worker serving its share of the connections. Route tables
 * are read-only after start; metrics are atomic counters; deferred
 * requests are guarded by one mutex (see struct dd_http_server).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "dedupd/http/http.h"
#include "dedupd/http/uri.h"

/* Latency buckets, seconds (Prometheus "le" bounds). */
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                 0.05,   0.1,   0.25,   0.5,   1.0,  2.5};
#define N_BUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct route_stats {
    atomic_uint_fast64_t by_class[6]; /* index status / 100 */
    atomic_uint_fast64_t bucket[N_BUCKETS + 1];
    atomic_uint_fast64_t sum_us;
};

struct dd_http_server {
    struct MHD_Daemon *mhd;
    struct dd_http_route routes[DD_HTTP_MAX_ROUTES];
    struct route_stats stats[DD_HTTP_MAX_ROUTES + 1]; /* last: unmatched */
    size_t n_routes;
    char *token;
    size_t max_body;
    uint16_t port;
    unsigned connection_limit, per_ip_limit;
    char *tls_key, *tls_cert, *tls_ca;
    atomic_uint_fast64_t too_big, unauthorized, bad_client_cert;
    /* request body bytes held now, and the most ever held */
    atomic_uint_fast64_t body_bytes, body_peak;

    /* Deferred requests. The lock guards the pending list, every handle's
     * fields and refs, and rs->dresp of a deferred request. The server is
     * freed when dd_http_stop has run and no handle is left (refs). */
    pthread_mutex_t defer_lock;
    struct dd_http_deferred *pending; /* deferred, not yet answered */
    unsigned refs;                    /* 1 until stopped, + 1 per live handle */
    bool stopping;
    unsigned draining; /* answered by the stop, connection not yet ended */
    pthread_cond_t drained;
};

/* A deferred request. Two references: the thread that will answer and the
 * connection (dropped when libmicrohttpd ends the request). */
struct dd_http_deferred {
    struct dd_http_server *srv;
    struct MHD_Connection *conn; /* NULL once the request has ended */
    struct request_state *rs;    /* NULL once the request has ended */
    struct dd_http_deferred *next, *prev;
    unsigned refs;
    bool replied; /* an answer is queued (by the handler's thread or the stop) */
    bool by_stop; /* ... by the stop, which waits for it to go out */
};

/* One request, from uri_cb to completed_cb. */
struct request_state {
    struct dd_http_server *srv;
    double start;
    char *body;
    size_t len, cap;
    bool seen;                          /* the first access call (headers only) has run */
    bool too_big;                       /* chunked body past the cap: drained, 413 at the end */
    bool rejected;                      /* answered already: ignore the rest */
    bool encoded_nul;                   /* "%00" in the raw path */
    bool too_many_args;                 /* counted in the raw query */
    bool peer_verified;                 /* a client certificate was verified against the CA */
    char peer_id[DD_HTTP_MAX_IDENTITY]; /* its identity; "" = none usable */
    size_t route;                       /* index, or n_routes = unmatched */
    char *scratch;                      /* path parameters point here */
    size_t scratch_len;
    const char *params[DD_HTTP_MAX_PARAMS];
    size_t n_params;
    struct MHD_Connection *conn;
    struct dd_http_deferred *deferred;
    struct dd_http_response dresp; /* the deferred answer, under defer_lock */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- replies ---- */

int dd_http_reply_text(struct dd_http_response *resp, int status, const char *content_type,
                       const char *text, size_t len)
{
    dd_free(resp->body);
    resp->body = dd_malloc(len + 1);
    if (!resp->body) {
        resp->len = 0;
        resp->status = 500;
        return -ENOMEM;
    }
    memcpy(resp->body, text, len);
    resp->body[len] = '\0';
    resp->len = len;
    resp->status = status;
    resp->content_type = content_type;
    return 0;
}

int dd_http_reply_json(struct dd_http_response *resp, int status, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    int r;

    json_decref(doc);
    if (!text) {
        static const char oom[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        return dd_http_reply_text(resp, 500, "application/json", oom, sizeof(oom) - 1);
    }
    r = dd_http_reply_text(resp, status, "application/json", text, strlen(text));
    dd_free(text); /* jansson allocates through the shim (start) */
    return r;
}

int dd_http_reply_error(struct dd_http_response *resp, int status, const char *code,
                        const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    dd_http_utf8_scrub(msg);
    return dd_http_reply_json(resp, status,
                              json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg));
}

json_t *dd_http_body_json(const struct dd_http_request *req, struct dd_http_response *resp)
{
    json_error_t err;
    json_t *doc;

    if (req->body_len == 0) {
        dd_http_reply_error(resp, 400, "bad_request", "a JSON object body is required");
        return NULL;
    }
    doc = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &err);
    if (!doc) {
        dd_http_reply_error(resp, 400, "bad_json", "malformed JSON at line %d, column %d: %s",
                            err.line, err.column, err.text);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        dd_http_reply_error(resp, 400, "bad_json", "the body must be a JSON object");
        return NULL;
    }
    return doc;
}

const char *dd_http_query(const struct dd_http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

struct query_all {
    const char *name;
    const char **out;
    size_t max, n;
};

static enum MHD_Result query_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    struct query_all *qa = cls;
    (void)kind;
    if (key && strcmp(key, qa->name) == 0) {
        if (qa->n < qa->max)
            qa->out[qa->n] = value ? value : "";
        qa->n++;
    }
    return MHD_YES;
}

size_t dd_http_query_all(const struct dd_http_request *req, const char *name, const char **out,
                         size_t max)
{
    struct query_all qa = {name, out, max, 0};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, query_one, &qa);
    return qa.n;
}

/* ---- routing ---- */

static void record(struct dd_http_server *srv, size_t route, int status, double seconds)
{
    struct route_stats *st = &srv->stats[route];
    size_t b = 0;

    atomic_fetch_add(&st->by_class[status / 100 < 6 ? status / 100 : 5], 1);
    while (b < N_BUCKETS && seconds > buckets[b])
        b++;
    atomic_fetch_add(&st->bucket[b], 1);
    atomic_fetch_add(&st->sum_us, (uint_fast64_t)(seconds * 1e6));
}

static bool token_ok(const struct dd_http_server *srv, struct MHD_Connection *c)
{
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    size_t tl = strlen(srv->token), al;
    unsigned char diff = 0;

    if (!auth || strncmp(auth, "Bearer ", 7) != 0)
        return false;
    auth += 7;
    al = strlen(auth);
    /* constant time in the token's length */
    for (size_t i = 0; i < tl; i++)
        diff |= (unsigned char)(srv->token[i] ^ (i < al ? auth[i] : 0));
    return diff == 0 && al == tl;
}

/* Copies s (len bytes) to id when it is fit to be an identity: printable
 * ASCII without NUL, shorter than the identity buffer; anything else
 * identifies nobody and leaves id as it is (""). */
static void set_identity(char *id, size_t idlen, const char *s, size_t len)
{
    if (len == 0 || len >= DD_HTTP_MAX_IDENTITY || len >= idlen || strlen(s) != len)
        return;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] > 0x7e)
            return;
    }
    memcpy(id, s, len);
    id[len] = '\0';
}

/*
 * The identity of a verified peer certificate (the first of the chain): its
 * subject CN; a certificate with no CN, its first DNS subjectAltName. Two
 * CNs are ambiguous (readers disagree on which one names the holder), so
 * they name nobody; so does a name set_identity refuses. id is "" then.
 */
static void peer_identity_of(gnutls_session_t session, char *id, size_t idlen)
{
    unsigned n = 0;
    const gnutls_datum_t *chain = gnutls_certificate_get_peers(session, &n);
    gnutls_x509_crt_t crt;
    char buf[1024];
    size_t len = sizeof(buf);
    int r;

    id[0] = '\0';
    if (!chain || n == 0 || gnutls_x509_crt_init(&crt) < 0)
        return;
    if (gnutls_x509_crt_import(crt, &chain[0], GNUTLS_X509_FMT_DER) < 0)
        goto out;
    r = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, buf, &len);
    if (r == 0) {
        char second[8];
        size_t len2 = sizeof(second);
        r = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 1, 0, second, &len2);
        if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            set_identity(id, idlen, buf, len);
        goto out;
    }
    if (r != GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
        goto out; /* a CN past the buffer, or one gnutls cannot decode */
    for (unsigned seq = 0;; seq++) {
        len = sizeof(buf) - 1;
        r = gnutls_x509_crt_get_subject_alt_name(crt, seq, buf, &len, NULL);
        if (r == GNUTLS_SAN_DNSNAME) {
            buf[len < sizeof(buf) ? len : sizeof(buf) - 1] = '\0';
            set_identity(id, idlen, buf, len);
            break;
        }
        if (r < 0) /* the end, or an entry past the buffer: no guessing past it */
            break;
    }
out:
    gnutls_x509_crt_deinit(crt);
}

/*
 * The client certificate of this connection, verified against the client CA
 * (the trust list libmicrohttpd gave gnutls): a chain to that CA, in its
 * validity period, and usable by a TLS client (an extendedKeyUsage without
 * clientAuth is refused; none at all is accepted, as gnutls does). On
 * failure, why says what is wrong; on success id holds its identity
 * (peer_identity_of). Checked per request, not cached: a signature check
 * costs tens of microseconds and needs no per-connection state.
 */
static bool client_cert_ok(struct MHD_Connection *c, char *id, size_t idlen, char *why,
                           size_t whylen)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t session = ci ? (gnutls_session_t)ci->tls_session : NULL;
    gnutls_typed_vdata_st purpose = {
        .type = GNUTLS_DT_KEY_PURPOSE_OID,
        .data = (unsigned char *)(uintptr_t)GNUTLS_KP_TLS_WWW_CLIENT,
    };
    unsigned status = 0, n_certs = 0;
    gnutls_datum_t text = {NULL, 0};
    int r;

    if (!session) {
        snprintf(why, whylen, "the connection is not TLS");
        return false;
    }
    if (!gnutls_certificate_get_peers(session, &n_certs) || n_certs == 0) {
        snprintf(why, whylen, "none was presented");
        return false;
    }
    r = gnutls_certificate_verify_peers(session, &purpose, 1, &status);
    if (r < 0) {
        snprintf(why, whylen, "it cannot be verified: %s", gnutls_strerror(r));
        return false;
    }
    if (status == 0) {
        peer_identity_of(session, id, idlen);
        return true;
    }
    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0) == 0) {
        size_t len = (size_t)snprintf(why, whylen, "%s", (const char *)text.data);
        gnutls_free(text.data);
        for (len = len < whylen ? len : whylen - 1; len > 0 && why[len - 1] == ' '; len--)
            why[len - 1] = '\0'; /* gnutls ends each sentence with a space */
    } else {
        snprintf(why, whylen, "it is not trusted (gnutls status 0x%x)", status);
    }
    return false;
}

static enum MHD_Result send_response(struct MHD_Connection *c, struct dd_http_response *resp,
                                     const char *allow, bool close_after)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        resp->len, resp->body ? resp->body : (void *)(uintptr_t) "", MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;

    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            resp->content_type ? resp->content_type : "application/json");
    if (allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    if (close_after)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    ret = MHD_queue_response(c, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Queues resp (freeing its body), records it under route and marks the
 * request answered. */
static enum MHD_Result answer(struct dd_http_server *srv, struct MHD_Connection *c,
                              struct request_state *rs, struct dd_http_response *resp,
                              const char *allow, bool close_after)
{
    enum MHD_Result ret = send_response(c, resp, allow, close_after);

    record(srv, rs->route, resp->status, now_s() - rs->start);
    dd_free(resp->body);
    resp->body = NULL;
    rs->rejected = true;
    return ret;
}

/* An error answered from the request line or headers, before the body. */
static enum MHD_Result reject(struct dd_http_server *srv, struct MHD_Connection *c,
                              struct request_state *rs, int status, const char *code,
                              const char *msg)
{
    struct dd_http_response resp = {.status = 500};

    dd_http_reply_error(&resp, status, code, "%s", msg);
    return answer(srv, c, rs, &resp, NULL, false);
}

/* What the header and argument scans found. */
struct scan {
    unsigned n_args;
    char bad_arg[160]; /* message naming the bad argument, "" when none */
    unsigned n_content_length;
    bool content_length_differs, transfer_encoding;
    const char *content_length;
};

static enum MHD_Result scan_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                size_t key_size, const char *value, size_t value_size)
{
    struct scan *sc = cls;
    const char *why;

    (void)kind;
    if (++sc->n_args > DD_HTTP_MAX_QUERY_ARGS)
        return MHD_NO;
    if (sc->bad_arg[0])
        return MHD_YES;
    if ((why = dd_http_text_problem(key, key_size)))
        snprintf(sc->bad_arg, sizeof(sc->bad_arg), "a query argument name %s", why);
    else if (value && (why = dd_http_text_problem(value, value_size)))
        snprintf(sc->bad_arg, sizeof(sc->bad_arg), "query argument '%.64s' %s", key, why);
    return MHD_YES;
}

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct scan *sc = cls;

    (void)kind;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        if (sc->n_content_length++ > 0 && strcmp(sc->content_length, value ? value : "") != 0)
            sc->content_length_differs = true;
        if (sc->n_content_length == 1)
            sc->content_length = value ? value : "";
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        sc->transfer_encoding = true;
    }
    return MHD_YES;
}

/* Finds the route for method and path (HEAD is served by GET routes); fills
 * rs->route and rs->params, or the Allow list when only the method differs.
 * Returns 0, 404 or 405. */
static int route(struct dd_http_server *srv, const char *method, const char *url,
                 struct request_state *rs, char *allow, size_t allow_len)
{
    bool path_matched = false;
    const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;

    for (size_t i = 0; i < srv->n_routes; i++) {
        const char *params[DD_HTTP_MAX_PARAMS];
        size_t np;
        if (!dd_http_match(srv->routes[i].pattern, url, rs->scratch, rs->scratch_len, params, &np))
            continue;
        path_matched = true;
        if (strcmp(srv->routes[i].method, want) != 0) {
            const char *m = srv->routes[i].method;
            size_t al = strlen(allow);
            if (!strstr(allow, m))
                snprintf(allow + al, allow_len - al, "%s%s%s", al ? ", " : "", m,
                         strcmp(m, "GET") == 0 ? ", HEAD" : "");
            continue;
        }
        rs->route = i;
        memcpy(rs->params, params, np * sizeof(*params));
        rs->n_params = np;
        return 0;
    }
    return path_matched ? 405 : 404;
}

/* A route's body cap: its own, else the server's. */
static size_t body_cap(const struct dd_http_server *srv, const struct dd_http_route *rt)
{
    return rt->max_body ? rt->max_body : srv->max_body;
}

/*
 * The first call, with the request line and headers only: everything that
 * can be decided without the body is decided here, and an error is answered
 * at once, so a client without the token (or with a body over the cap) gets
 * no byte buffered.
 */
static enum MHD_Result first_call(struct dd_http_server *srv, struct MHD_Connection *c,
                                  const char *url, const char *method, struct request_state *rs)
{
    struct dd_http_response resp = {.status = 500};
    struct scan sc = {0};
    char allow[128] = "", msg[256], cert_why[384];
    const char *why;
    uint64_t length;
    int r;

    rs->route = srv->n_routes; /* "unmatched" until routed */
    if (srv->tls_ca) {
        if (!client_cert_ok(c, rs->peer_id, sizeof(rs->peer_id), cert_why, sizeof(cert_why))) {
            atomic_fetch_add(&srv->bad_client_cert, 1);
            dd_http_reply_error(&resp, 403, "forbidden", "client certificate required: %s",
                                cert_why);
            return answer(srv, c, rs, &resp, NULL, true);
        }
        rs->peer_verified = true;
    }
    if (rs->encoded_nul)
        return reject(srv, c, rs, 400, "bad_request", "the path contains an encoded NUL (%00)");
    if (strlen(url) >= DD_HTTP_MAX_PATH) {
        snprintf(msg, sizeof(msg), "path longer than %u bytes", DD_HTTP_MAX_PATH - 1);
        return reject(srv, c, rs, 414, "uri_too_long", msg);
    }
    if ((why = dd_http_text_problem(url, strlen(url)))) {
        snprintf(msg, sizeof(msg), "the path %s", why);
        return reject(srv, c, rs, 400, "bad_request", msg);
    }
    if (rs->too_many_args || (MHD_get_connection_values_n(c, MHD_GET_ARGUMENT_KIND, scan_arg, &sc),
                              sc.n_args > DD_HTTP_MAX_QUERY_ARGS)) {
        snprintf(msg, sizeof(msg), "more than %u query arguments", DD_HTTP_MAX_QUERY_ARGS);
        return reject(srv, c, rs, 400, "bad_query", msg);
    }
    if (sc.bad_arg[0])
        return reject(srv, c, rs, 400, "bad_query", sc.bad_arg);
    MHD_get_connection_values(c, MHD_HEADER_KIND, scan_header, &sc);
    if (sc.content_length_differs)
        return reject(srv, c, rs, 400, "bad_request", "two different Content-Length headers");
    if (sc.n_content_length && sc.transfer_encoding)
        return reject(srv, c, rs, 400, "bad_request", "both Content-Length and Transfer-Encoding");

    rs->scratch_len = strlen(url) + 1;
    if (!(rs->scratch = dd_malloc(rs->scratch_len)))
        return MHD_NO;
    r = route(srv, method, url, rs, allow, sizeof(allow));
    if (r == 405) {
        dd_http_reply_error(&resp, 405, "method_not_allowed",
                            "%s is not allowed on %s (allowed: %s)", method, url, allow);
        return answer(srv, c, rs, &resp, allow, false);
    }
    if (r == 404) {
        dd_http_reply_error(&resp, 404, "not_found", "no route for %s %s", method, url);
        return answer(srv, c, rs, &resp, NULL, false);
    }
    if (srv->routes[rs->route].mutating && srv->token && !token_ok(srv, c)) {
        atomic_fetch_add(&srv->unauthorized, 1);
        return reject(srv, c, rs, 401, "unauthorized",
                      "this endpoint needs 'Authorization: Bearer <token>'");
    }
    size_t cap = body_cap(srv, &srv->routes[rs->route]);
    if (sc.content_length && dd_parse_u64(sc.content_length, &length) == 0 && length > cap) {
        atomic_fetch_add(&srv->too_big, 1);
        snprintf(msg, sizeof(msg), "request body over %zu bytes", cap);
        return reject(srv, c, rs, 413, "payload_too_large", msg);
    }
    return MHD_YES;
}

/* The last call, with the whole body: runs the handler. */
static enum MHD_Result dispatch(struct dd_http_server *srv, struct MHD_Connection *c,
                                const char *url, const char *method, struct request_state *rs)
{
    struct dd_http_response resp = {.status = 500};
    struct dd_http_request req = {.method = method, .path = url, .conn = c, .state = rs};
    const struct dd_http_route *rt = &srv->routes[rs->route];

    if (rs->too_big) {
        atomic_fetch_add(&srv->too_big, 1);
        dd_http_reply_error(&resp, 413, "payload_too_large", "request body over %zu bytes",
                            body_cap(srv, rt));
        return answer(srv, c, rs, &resp, NULL, false);
    }
    req.body = rs->body ? rs->body : "";
    req.body_len = rs->len;
    memcpy(req.params, rs->params, rs->n_params * sizeof(*rs->params));
    req.n_params = rs->n_params;
    req.peer_identity = rs->peer_verified ? rs->peer_id : NULL;
    rs->conn = c;
    if (rt->handler(rt->ctx, &req, &resp) < 0 && resp.status < 500)
        dd_http_reply_error(&resp, 500, "internal", "the handler failed");
    if (rs->deferred) { /* suspended: answered on resume */
        dd_free(resp.body);
        return MHD_YES;
    }
    if (resp.status < 100 || resp.status > 599)
        dd_http_reply_error(&resp, 500, "internal", "the handler set no status");
    return answer(srv, c, rs, &resp, NULL, false);
}

/* ---- deferred answers ---- */

static void server_unref(struct dd_http_server *srv);

/* Drops one reference to h; call with srv->defer_lock held. True when h
 * was freed (then the caller drops h's server reference after unlocking). */
static bool deferred_unref_locked(struct dd_http_deferred *h)
{
    if (--h->refs > 0)
        return false;
    dd_free(h);
    return true;
}

static void deferred_unlink_locked(struct dd_http_server *srv, struct dd_http_deferred *h)
{
    if (h->prev)
        h->prev->next = h->next;
    else if (srv->pending == h)
        srv->pending = h->next;
    if (h->next)
        h->next->prev = h->prev;
    h->next = h->prev = NULL;
}

/* Hands resp to the suspended request and resumes it; lock held. */
static void deferred_answer_locked(struct dd_http_deferred *h, struct dd_http_response *resp)
{
    struct request_state *rs = h->rs;

    h->replied = true;
    dd_free(rs->dresp.body);
    rs->dresp = *resp;
    resp->body = NULL;
    MHD_resume_connection(h->conn);
}

struct dd_http_deferred *dd_http_defer(const struct dd_http_request *req)
{
    struct request_state *rs = req->state;
    struct dd_http_server *srv = rs ? rs->srv : NULL;
    struct dd_http_deferred *h;

    if (!srv || rs->deferred || !(h = dd_calloc(1, sizeof(*h))))
        return NULL;
    pthread_mutex_lock(&srv->defer_lock);
    if (srv->stopping) {
        pthread_mutex_unlock(&srv->defer_lock);
        dd_free(h);
        return NULL;
    }
    h->srv = srv;
    h->conn = rs->conn;
    h->rs = rs;
    h->refs = 2; /* the handler's thread and the connection */
    h->next = srv->pending;
    if (h->next)
        h->next->prev = h;
    srv->pending = h;
    srv->refs++;
    rs->deferred = h;
    MHD_suspend_connection(rs->conn);
    pthread_mutex_unlock(&srv->defer_lock);
    return h;
}

int dd_http_deferred_reply(struct dd_http_deferred *h, struct dd_http_response *resp)
{
    struct dd_http_server *srv = h->srv;
    bool freed;
    int r = 0;

    if (resp->status < 100 || resp->status > 599)
        dd_http_reply_error(resp, 500, "internal", "the handler set no status");
    pthread_mutex_lock(&srv->defer_lock);
    if (h->replied || !h->rs) {
        r = -ECONNABORTED;
    } else {
        deferred_unlink_locked(srv, h);
        deferred_answer_locked(h, resp);
    }
    freed = deferred_unref_locked(h);
    pthread_mutex_unlock(&srv->defer_lock);
    dd_free(resp->body);
    resp->body = NULL;
    if (freed)
        server_unref(srv);
    return r;
}

/* Resumed: queue what the other thread left. */
static enum MHD_Result deferred_resumed(struct dd_http_server *srv, struct MHD_Connection *c,
                                        struct request_state *rs)
{
    struct dd_http_response resp = {.status = 500};
    bool replied;

    pthread_mutex_lock(&srv->defer_lock);
    replied = rs->deferred->replied;
    if (replied) {
        resp = rs->dresp;
        rs->dresp.body = NULL;
    }
    pthread_mutex_unlock(&srv->defer_lock);
    if (!replied)
        return MHD_YES; /* not ours to answer yet (never resumed without a reply) */
    return answer(srv, c, rs, &resp, NULL, false);
}

/* ---- libmicrohttpd callbacks ---- */

/*
 * Called with the raw request line's URI before libmicrohttpd decodes it or
 * splits the query: the one place an encoded NUL in the path is still
 * visible (the decoded path is a C string cut at it), and where too many
 * query arguments are counted before libmicrohttpd parses them into its
 * per-connection pool. Its result becomes the request's state.
 */
static void *uri_cb(void *cls, const char *uri, struct MHD_Connection *c)
{
    struct dd_http_server *srv = cls;
    struct request_state *rs = dd_calloc(1, sizeof(*rs));
    const char *q = strchr(uri, '?');
    unsigned n_args = 0;

    (void)c;
    if (!rs)
        return NULL;
    rs->srv = srv;
    rs->start = now_s();
    dd_http_uri_scan(uri, &rs->encoded_nul, &n_args);
    rs->too_many_args = n_args > DD_HTTP_MAX_QUERY_ARGS;
    /* Past a few hundred arguments libmicrohttpd's pool runs out while it
     * parses them, and the connection hangs without an answer until the
     * idle timeout. Its parser (0.9.75 parse_initial_message_line) reads
     * the query from this very buffer, right after the '?' it found before
     * calling us: end the query there, so it parses none and the first
     * access call answers 400. The buffer is its writable read buffer; the
     * 400 for 477 to 3,000 arguments in test-http catches a version that
     * parses differently. */
    if (rs->too_many_args)
        ((char *)(uintptr_t)q)[1] = '\0';
    return rs;
}

static void body_account(struct dd_http_server *srv, size_t old_cap, size_t new_cap)
{
    uint_fast64_t now;

    if (new_cap >= old_cap) {
        now = atomic_fetch_add(&srv->body_bytes, new_cap - old_cap) + (new_cap - old_cap);
        uint_fast64_t peak = atomic_load(&srv->body_peak);
        while (now > peak && !atomic_compare_exchange_weak(&srv->body_peak, &peak, now))
            ;
    } else {
        atomic_fetch_sub(&srv->body_bytes, old_cap - new_cap);
    }
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_size, void **con_cls)
{
    struct dd_http_server *srv = cls;
    struct request_state *rs = *con_cls;

    (void)version;
    if (!rs) /* uri_cb ran out of memory */
        return MHD_NO;
    if (!rs->seen) {
        rs->seen = true;
        return first_call(srv, c, url, method, rs);
    }
    if (rs->rejected) { /* answered already: drop the body, route nothing */
        *upload_size = 0;
        return MHD_YES;
    }
    if (rs->deferred)
        return deferred_resumed(srv, c, rs);
    if (*upload_size > 0) {
        size_t n = *upload_size, old_cap = rs->cap;
        *upload_size = 0;
        if (rs->too_big || rs->len + n > body_cap(srv, &srv->routes[rs->route])) {
            rs->too_big = true; /* chunked: drain the rest, answer 413 at the end */
            return MHD_YES;
        }
        if (DD_ARRAY_RESERVE(rs->body, rs->cap, rs->len + n + 1) < 0)
            return MHD_NO;
        body_account(srv, old_cap, rs->cap);
        memcpy(rs->body + rs->len, upload, n);
        rs->len += n;
        rs->body[rs->len] = '\0';
        return MHD_YES;
    }
    return dispatch(srv, c, url, method, rs);
}

static void completed_cb(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct dd_http_server *srv = cls;
    struct request_state *rs = *con_cls;
    bool freed = false;

    (void)c;
    (void)toe;
    if (!rs)
        return;
    if (rs->deferred) {
        pthread_mutex_lock(&srv->defer_lock);
        if (!rs->deferred->replied)
            deferred_unlink_locked(srv, rs->deferred);
        if (rs->deferred->by_stop && --srv->draining == 0)
            pthread_cond_broadcast(&srv->drained);
        rs->deferred->rs = NULL;
        rs->deferred->conn = NULL;
        freed = deferred_unref_locked(rs->deferred);
        pthread_mutex_unlock(&srv->defer_lock);
    }
    body_account(srv, rs->cap, 0);
    dd_free(rs->dresp.body);
    dd_free(rs->body);
    dd_free(rs->scratch);
    dd_free(rs);
    *con_cls = NULL;
    if (freed)
        server_unref(srv);
}

/* ---- start/stop ---- */

int dd_http_parse_listen(const char *listen, char *addr, size_t addrlen, uint16_t *ret_port,
                         bool *ret_loopback)
{
    const char *colon, *a = listen;
    size_t alen;
    uint64_t port;
    struct in_addr v4;
    struct in6_addr v6;

    if (!listen || !*listen)
        return DD_E_PARSE;
    if (*listen == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':')
            return DD_E_PARSE;
        a = listen + 1;
        alen = (size_t)(close - a);
        colon = close + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon)
            return DD_E_PARSE;
        alen = (size_t)(colon - listen);
    }
    if (alen == 0 || alen >= addrlen || dd_parse_u64_range(colon + 1, 0, 65535, &port) < 0)
        return DD_E_PARSE;
    memcpy(addr, a, alen);
    addr[alen] = '\0';
    if (inet_pton(AF_INET, addr, &v4) == 1)
        *ret_loopback = (ntohl(v4.s_addr) >> 24) == 127;
    else if (inet_pton(AF_INET6, addr, &v6) == 1)
        *ret_loopback = IN6_IS_ADDR_LOOPBACK(&v6);
    else
        return DD_E_PARSE;
    *ret_port = (uint16_t)port;
    return 0;
}

static char *read_pem(const char *path, char *errbuf, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *buf;
    ssize_t n;

    if (fd < 0) {
        snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    buf = dd_malloc(65536);
    n = buf ? read(fd, buf, 65535) : -1;
    close(fd);
    if (n <= 0) {
        snprintf(errbuf, errlen, "%s: cannot read PEM data", path);
        dd_free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* Reads a whole PEM file for a TLS client (a CA bundle may be far past
 * read_pem's 64 KiB); errbuf names the file and what is wrong. */
static int load_client_pem(const char *what, const char *path, gnutls_datum_t *ret, char *errbuf,
                           size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), r;

    if (fd < 0) {
        snprintf(errbuf, errlen, "%s %s: %s", what, path, strerror(errno));
        return -errno;
    }
    close(fd);
    if ((r = gnutls_load_file(path, ret)) < 0) {
        snprintf(errbuf, errlen, "%s %s: %s", what, path, gnutls_strerror(r));
        return -EINVAL;
    }
    if (ret->size == 0) {
        gnutls_free(ret->data);
        ret->data = NULL;
        snprintf(errbuf, errlen, "%s %s: the file is empty", what, path);
        return -EINVAL;
    }
    return 0;
}

int dd_http_tls_check_client_files(const char *cert_file, const char *key_file, const char *ca_file,
                                   char *errbuf, size_t errlen)
{
    gnutls_certificate_credentials_t cred;
    gnutls_datum_t cert = {NULL, 0}, key = {NULL, 0}, ca = {NULL, 0};
    int r, ret = 0;

    if ((cert_file == NULL) != (key_file == NULL)) {
        snprintf(errbuf, errlen, "a client certificate needs its key, and a key its certificate");
        return DD_E_USAGE;
    }
    if (gnutls_certificate_allocate_credentials(&cred) < 0) {
        snprintf(errbuf, errlen, "out of memory");
        return -ENOMEM;
    }
    if (cert_file) {
        if ((ret = load_client_pem("client certificate", cert_file, &cert, errbuf, errlen)) < 0 ||
            (ret = load_client_pem("client key", key_file, &key, errbuf, errlen)) < 0)
            goto out;
        /* also checks that the key is the certificate's */
        r = gnutls_certificate_set_x509_key_mem(cred, &cert, &key, GNUTLS_X509_FMT_PEM);
        if (r < 0) {
            snprintf(errbuf, errlen, "client certificate %s with key %s: %s", cert_file, key_file,
                     gnutls_strerror(r));
            ret = -EINVAL;
            goto out;
        }
    }
    if (ca_file) {
        if ((ret = load_client_pem("CA file", ca_file, &ca, errbuf, errlen)) < 0)
            goto out;
        r = gnutls_certificate_set_x509_trust_mem(cred, &ca, GNUTLS_X509_FMT_PEM);
        if (r <= 0) {
            snprintf(errbuf, errlen, "CA file %s: %s", ca_file,
                     r < 0 ? gnutls_strerror(r) : "no PEM certificate in it");
            ret = -EINVAL;
            goto out;
        }
    }
out:
    gnutls_free(cert.data);
    if (key.data)
        gnutls_memset(key.data, 0, key.size); /* the private key */
    gnutls_free(key.data);
    gnutls_free(ca.data);
    gnutls_certificate_free_credentials(cred);
    return ret;
}

/* jansson's allocations go through our shim, like everything else: counted,
 * and failable in tests. Process-wide; both ends are malloc/free, so a string
 * jansson made before this is still freed correctly. */
static void jansson_alloc_once(void)
{
    json_set_alloc_funcs(dd_malloc, dd_free);
}

/*
 * The connection limit this process can serve: each connection is an fd, so
 * the RLIMIT_NOFILE soft limit is raised toward the hard one to fit `want`
 * plus room for the rest of the daemon (store files, /proc, the listener);
 * where the hard limit is lower, fewer connections.
 */
#define FD_RESERVE 256u
static unsigned fit_connections(unsigned want)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)want + FD_RESERVE;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return want;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        struct rlimit raised = rl;
        raised.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl = raised;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        return rl.rlim_cur > 2 * FD_RESERVE ? (unsigned)(rl.rlim_cur - FD_RESERVE)
                                            : (unsigned)(rl.rlim_cur / 2);
    return want;
}

int dd_http_start(const struct dd_http_config *cfg, const struct dd_http_route *routes,
                  size_t n_routes, struct dd_http_server **ret, char *errbuf, size_t errlen)
{
    static pthread_once_t jansson_once = PTHREAD_ONCE_INIT;
    struct dd_http_server *srv;
    struct sockaddr_storage ss;
    char addr[64];
    uint16_t port;
    bool loopback;
    /* epoll: no FD_SETSIZE ceiling on connections; suspend/resume for
     * deferred answers (it adds the wake-up channel resume needs) */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
    unsigned threads = cfg->threads ? cfg->threads : DD_HTTP_THREADS;
    const union MHD_DaemonInfo *info;
    struct MHD_OptionItem opts[16];
    size_t n;

    pthread_once(&jansson_once, jansson_alloc_once);
    if (n_routes > DD_HTTP_MAX_ROUTES) {
        snprintf(errbuf, errlen, "more than %u routes", DD_HTTP_MAX_ROUTES);
        return DD_E_TOOBIG;
    }
    if (threads > DD_HTTP_MAX_THREADS) {
        snprintf(errbuf, errlen, "%u HTTP threads: at most %u", threads, DD_HTTP_MAX_THREADS);
        return DD_E_USAGE;
    }
    if (dd_http_parse_listen(cfg->listen, addr, sizeof(addr), &port, &loopback) < 0) {
        snprintf(errbuf, errlen,
                 "listen address '%s': expected ADDR:PORT or [ADDR]:PORT with a numeric address",
                 cfg->listen ? cfg->listen : "");
        return DD_E_PARSE;
    }
    /* beyond loopback every request must be authenticated: by the token, or
     * by a client certificate the client CA verifies (every request then) */
    if (!loopback && !(cfg->token && *cfg->token) && !cfg->tls_client_ca) {
        snprintf(errbuf, errlen,
                 "refusing to listen on %s without a token: set --token-file (or require "
                 "client certificates with --tls-client-ca), or listen on 127.0.0.1",
                 cfg->listen);
        return DD_E_USAGE;
    }
    srv = dd_calloc(1, sizeof(*srv));
    if (!srv)
        return -ENOMEM;
    pthread_mutex_init(&srv->defer_lock, NULL);
    pthread_cond_init(&srv->drained, NULL);
    srv->refs = 1;
    srv->connection_limit =
        fit_connections(cfg->max_connections ? cfg->max_connections : DD_HTTP_MAX_CONNECTIONS);
    srv->per_ip_limit = cfg->per_ip_limit ? cfg->per_ip_limit : DD_HTTP_PER_IP_CONNECTIONS;
    memcpy(srv->routes, routes, n_routes * sizeof(*routes));
    srv->n_routes = n_routes;
    srv->max_body = cfg->max_body ? cfg->max_body : DD_HTTP_MAX_BODY;
    if (cfg->token && *cfg->token && !(srv->token = dd_strdup(cfg->token)))
        goto oom;

    memset(&ss, 0, sizeof(ss));
    if (strchr(addr, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        inet_pton(AF_INET6, addr, &s6->sin6_addr);
        flags |= MHD_USE_IPv6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        inet_pton(AF_INET, addr, &s4->sin_addr);
    }
    if (cfg->tls_client_ca && !(cfg->tls_cert && cfg->tls_key)) {
        snprintf(errbuf, errlen,
                 "a client CA (%s) needs HTTPS: set the server certificate and key too",
                 cfg->tls_client_ca);
        dd_http_stop(srv);
        return DD_E_USAGE;
    }
    if (cfg->tls_cert || cfg->tls_key) {
        if (!cfg->tls_cert || !cfg->tls_key) {
            snprintf(errbuf, errlen, "TLS needs both a certificate and a key");
            dd_http_stop(srv);
            return DD_E_USAGE;
        }
        if (!(srv->tls_cert = read_pem(cfg->tls_cert, errbuf, errlen)) ||
            !(srv->tls_key = read_pem(cfg->tls_key, errbuf, errlen)) ||
            (cfg->tls_client_ca && !(srv->tls_ca = read_pem(cfg->tls_client_ca, errbuf, errlen)))) {
            dd_http_stop(srv);
            return -EINVAL;
        }
        flags |= MHD_USE_TLS;
    }
    /* Options as an array, so those that depend on the configuration are
     * simply left out: a per-address limit at or past the total is no limit
     * (libmicrohttpd then keeps no per-address table); a pool of one is
     * libmicrohttpd's single internal thread; TLS only with a certificate. */
    n = 0;
#define OPT(o, v, p) (opts[n++] = (struct MHD_OptionItem){(o), (intptr_t)(v), (void *)(p)})
    OPT(MHD_OPTION_SOCK_ADDR, 0, &ss);
    OPT(MHD_OPTION_URI_LOG_CALLBACK, uri_cb, srv);
    OPT(MHD_OPTION_NOTIFY_COMPLETED, completed_cb, srv);
    OPT(MHD_OPTION_CONNECTION_LIMIT, srv->connection_limit, NULL);
    OPT(MHD_OPTION_CONNECTION_TIMEOUT,
        cfg->idle_timeout_s ? cfg->idle_timeout_s : DD_HTTP_IDLE_TIMEOUT_S, NULL);
    if (threads > 1)
        OPT(MHD_OPTION_THREAD_POOL_SIZE, threads, NULL);
    if (srv->per_ip_limit < srv->connection_limit)
        OPT(MHD_OPTION_PER_IP_CONNECTION_LIMIT, srv->per_ip_limit, NULL);
    if (srv->tls_cert) {
        OPT(MHD_OPTION_HTTPS_MEM_CERT, 0, srv->tls_cert);
        OPT(MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key);
    }
    if (srv->tls_ca)
        OPT(MHD_OPTION_HTTPS_MEM_TRUST, 0, srv->tls_ca);
    OPT(MHD_OPTION_END, 0, NULL);
#undef OPT
    /* published before the first request can come: a handler may read the
     * server through the caller's copy (the daemon's /metrics does), and
     * creating the worker threads orders this store before their reads */
    *ret = srv;
    srv->mhd = MHD_start_daemon(flags, port, NULL, NULL, access_cb, srv, MHD_OPTION_ARRAY, opts,
                                MHD_OPTION_END);
    if (!srv->mhd) {
        *ret = NULL;
        snprintf(errbuf, errlen, "cannot listen on %s: %s", cfg->listen,
                 errno ? strerror(errno) : "libmicrohttpd refused the configuration");
        dd_http_stop(srv);
        return -EADDRINUSE;
    }
    info = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : port;
    return 0;
oom:
    dd_http_stop(srv);
    return -ENOMEM;
}

uint16_t dd_http_port(const struct dd_http_server *srv)
{
    return srv->port;
}

/* Seconds dd_http_stop waits for the 503s of deferred requests to go out. */
#define STOP_DRAIN_S 2

static void server_unref(struct dd_http_server *srv)
{
    unsigned left;

    pthread_mutex_lock(&srv->defer_lock);
    left = --srv->refs;
    pthread_mutex_unlock(&srv->defer_lock);
    if (left > 0)
        return;
    pthread_mutex_destroy(&srv->defer_lock);
    pthread_cond_destroy(&srv->drained);
    dd_free(srv);
}

void dd_http_stop(struct dd_http_server *srv)
{
    if (!srv)
        return;
    /* libmicrohttpd must not be stopped with a connection suspended: answer
     * every deferred request now; no new one can be deferred. */
    pthread_mutex_lock(&srv->defer_lock);
    srv->stopping = true;
    while (srv->pending) {
        struct dd_http_deferred *h = srv->pending;
        struct dd_http_response resp = {.status = 500};
        dd_http_reply_error(&resp, 503, "shutting_down", "the server is stopping");
        deferred_unlink_locked(srv, h);
        deferred_answer_locked(h, &resp);
        h->by_stop = true;
        srv->draining++;
    }
    /* Stopping closes every connection at once: give those 503s a moment
     * to go out (they are queued on resume), but no more than that. */
    if (srv->draining > 0) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += STOP_DRAIN_S;
        while (srv->draining > 0 &&
               pthread_cond_timedwait(&srv->drained, &srv->defer_lock, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&srv->defer_lock);
    if (srv->mhd)
        MHD_stop_daemon(srv->mhd); /* waits for in-flight requests */
    srv->mhd = NULL;
    dd_free(srv->token);
    dd_free(srv->tls_cert);
    dd_free(srv->tls_key);
    dd_free(srv->tls_ca);
    srv->token = srv->tls_cert = srv->tls_key = srv->tls_ca = NULL;
    server_unref(srv);
}

void dd_http_metrics(struct dd_http_server *srv, FILE *out)
{
    static const char *const classes[] = {"", "1xx", "2xx", "3xx", "4xx", "5xx"};

    fputs("# HELP dedupd_http_requests_total HTTP requests by route and status class.\n"
          "# TYPE dedupd_http_requests_total counter\n",
          out);
    for (size_t i = 0; i <= srv->n_routes; i++) {
        const char *name =
            i < srv->n_routes ? (srv->routes[i].name ? srv->routes[i].name : srv->routes[i].pattern)
                              : "unmatched";
        for (size_t k = 1; k < 6; k++) {
            uint64_t v = atomic_load(&srv->stats[i].by_class[k]);
            if (v)
                fprintf(out, "dedupd_http_requests_total{route=\"%s\",code=\"%s\"} %llu\n", name,
                        classes[k], (unsigned long long)v);
        }
    }
    fputs("# HELP dedupd_http_request_duration_seconds HTTP request latency by route.\n"
          "# TYPE dedupd_http_request_duration_seconds histogram\n",
          out);
    for (size_t i = 0; i <= srv->n_routes; i++) {
        const char *name =
            i < srv->n_routes ? (srv->routes[i].name ? srv->routes[i].name : srv->routes[i].pattern)
                              : "unmatched";
        uint64_t cum = 0;
        for (size_t b = 0; b <= N_BUCKETS; b++) {
            cum += atomic_load(&srv->stats[i].bucket[b]);
            if (b < N_BUCKETS)
                fprintf(
                    out,
                    "dedupd_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                    name, buckets[b], (unsigned long long)cum);
            else
                fprintf(out,
                        "dedupd_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} "
                        "%llu\n",
                        name, (unsigned long long)cum);
        }
        fprintf(out, "dedupd_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", name,
                (double)atomic_load(&srv->stats[i].sum_us) / 1e6);
        fprintf(out, "dedupd_http_request_duration_seconds_count{route=\"%s\"} %llu\n", name,
                (unsigned long long)cum);
    }
    fprintf(out,
            "# HELP dedupd_http_rejected_total Requests rejected before a handler ran.\n"
            "# TYPE dedupd_http_rejected_total counter\n"
            "dedupd_http_rejected_total{reason=\"body_too_large\"} %llu\n"
            "dedupd_http_rejected_total{reason=\"unauthorized\"} %llu\n"
            "dedupd_http_rejected_total{reason=\"client_certificate\"} %llu\n",
            (unsigned long long)atomic_load(&srv->too_big),
            (unsigned long long)atomic_load(&srv->unauthorized),
            (unsigned long long)atomic_load(&srv->bad_client_cert));
    fprintf(out,
            "# HELP dedupd_http_connection_limit Open connections accepted, in all and from one "
            "address.\n"
            "# TYPE dedupd_http_connection_limit gauge\n"
            "dedupd_http_connection_limit{scope=\"total\"} %u\n"
            "dedupd_http_connection_limit{scope=\"per_address\"} %u\n"
            "# HELP dedupd_http_body_bytes Request body bytes buffered now.\n"
            "# TYPE dedupd_http_body_bytes gauge\n"
            "dedupd_http_body_bytes %llu\n"
            "# HELP dedupd_http_body_bytes_max Most request body bytes ever buffered at once.\n"
            "# TYPE dedupd_http_body_bytes_max gauge\n"
            "dedupd_http_body_bytes_max %llu\n",
            srv->connection_limit,
            srv->per_ip_limit < srv->connection_limit ? srv->per_ip_limit : srv->connection_limit,
            (unsigned long long)atomic_load(&srv->body_bytes),
            (unsigned long long)atomic_load(&srv->body_peak));
}
