/*
 * The libcurl client (client.h). One CURL easy handle per client, reset
 * before each request with curl_easy_reset, which drops every option but
 * keeps the live connections, DNS and TLS session caches: so options never
 * leak from one request into the next (a POST's body into a later GET) and
 * keep-alive still works. curl's codes are translated here and nowhere else.
 *
 * Invariants: the token is copied into the prebuilt Authorization line at
 * creation and checked for header-safe bytes there; a request never follows
 * redirects and speaks only http and https; the reply buffer's cap is
 * enforced in the write callback, which makes curl stop reading.
 */
#define _GNU_SOURCE
#include "dedupd/http/client.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/common.h"

#define CONNECT_TIMEOUT_MS_DEFAULT 5000L
#define TIMEOUT_MS_DEFAULT         30000L

struct dd_http_client {
    CURL *curl;
    char *base;
    char *auth; /* "Authorization: Bearer ..." or NULL */
    char *ca_file;
    char *cert_file;
    char *key_file;
    struct curl_slist *connect_to; /* CURLOPT_CONNECT_TO's one entry, or NULL */
    long connect_timeout_ms;
    long timeout_ms;
    bool (*cancel)(void *ud);
    void *cancel_ud;
    unsigned long connections;
    char curl_err[CURL_ERROR_SIZE];
};

/* Where the body goes during one request. */
struct sink {
    struct dd_http_client *c;
    CURL *h;
    struct dd_dynbuf *buf;
    dd_http_client_data_fn fn;
    void *ud;
    int err; /* why the write callback stopped the transfer; 0 when it did not */
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *dup_opt(const char *s, bool *oom)
{
    char *r;
    if (!s)
        return NULL;
    r = dd_strdup(s);
    if (!r)
        *oom = true;
    return r;
}

struct dd_http_client *dd_http_client_free(struct dd_http_client *c)
{
    if (!c)
        return NULL;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    dd_free(c->base);
    if (c->auth)
        explicit_bzero(c->auth, strlen(c->auth));
    dd_free(c->auth);
    dd_free(c->ca_file);
    dd_free(c->cert_file);
    dd_free(c->key_file);
    curl_slist_free_all(c->connect_to);
    dd_free(c);
    return NULL;
}

int dd_http_client_new(const struct dd_http_client_config *cfg, struct dd_http_client **ret,
                       char *errbuf, size_t errlen)
{
    struct dd_http_client *c;
    bool oom = false;
    size_t n;

    if (!cfg->base_url ||
        (strncmp(cfg->base_url, "http://", 7) != 0 && strncmp(cfg->base_url, "https://", 8) != 0)) {
        snprintf(errbuf, errlen, "the base URL must start with http:// or https:// (got '%.200s')",
                 cfg->base_url ? cfg->base_url : "");
        return -EINVAL;
    }
    if (cfg->connect_addr && (!cfg->connect_addr[0] || strlen(cfg->connect_addr) > 64 ||
                              strspn(cfg->connect_addr, "0123456789abcdefghijklmnopqrstuvwxyz"
                                                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ.:%_-") !=
                                  strlen(cfg->connect_addr))) {
        snprintf(errbuf, errlen, "connect address '%.80s': expected a numeric IPv4 or IPv6 address",
                 cfg->connect_addr);
        return -EINVAL;
    }
    if ((cfg->cert_file == NULL) != (cfg->key_file == NULL)) {
        snprintf(errbuf, errlen, "a client certificate needs its key, and a key its certificate");
        return -EINVAL;
    }
    if (cfg->token) {
        for (const char *p = cfg->token; *p; p++) {
            if (*p < 0x21 || *p > 0x7e) {
                snprintf(errbuf, errlen,
                         "the token holds a byte that cannot go in an HTTP header (0x%02x)",
                         (unsigned char)*p);
                return -EINVAL;
            }
        }
    }
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        snprintf(errbuf, errlen, "libcurl: %s", curl_easy_strerror(global_rc));
        return DD_E_LIBRARY;
    }

    c = dd_calloc(1, sizeof(*c));
    if (!c) {
        snprintf(errbuf, errlen, "out of memory");
        return -ENOMEM;
    }
    c->base = dup_opt(cfg->base_url, &oom);
    c->ca_file = dup_opt(cfg->ca_file, &oom);
    c->cert_file = dup_opt(cfg->cert_file, &oom);
    c->key_file = dup_opt(cfg->key_file, &oom);
    if (cfg->token && !oom) {
        struct dd_dynbuf a;
        dd_dynbuf_init(&a, strlen(cfg->token) + 64);
        if (dd_dynbuf_printf(&a, "Authorization: Bearer %s", cfg->token) < 0 ||
            !(c->auth = dd_dynbuf_take(&a, NULL)))
            oom = true;
        dd_dynbuf_free(&a);
    }
    if (cfg->connect_addr && !oom) {
        /* "::ADDR:": any host and port of the URL, to ADDR at the same port */
        char entry[96];
        snprintf(entry, sizeof(entry),
                 strchr(cfg->connect_addr, ':') ? "::[%s]:" : "::%s:", cfg->connect_addr);
        if (!(c->connect_to = curl_slist_append(NULL, entry)))
            oom = true;
    }
    if (oom) {
        snprintf(errbuf, errlen, "out of memory");
        dd_http_client_free(c);
        return -ENOMEM;
    }
    n = strlen(c->base);
    while (n > 0 && c->base[n - 1] == '/')
        c->base[--n] = '\0';
    c->connect_timeout_ms =
        cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : CONNECT_TIMEOUT_MS_DEFAULT;
    c->timeout_ms = cfg->timeout_ms == 0 ? TIMEOUT_MS_DEFAULT : cfg->timeout_ms;
    c->cancel = cfg->cancel;
    c->cancel_ud = cfg->cancel_ud;
    c->curl = curl_easy_init();
    if (!c->curl) {
        snprintf(errbuf, errlen, "libcurl: cannot create a handle");
        dd_http_client_free(c);
        return DD_E_LIBRARY;
    }
    *ret = c;
    return 0;
}

unsigned long dd_http_client_connections(const struct dd_http_client *c)
{
    return c->connections;
}

char *dd_http_client_escape(const char *s)
{
    char *e, *r;
    pthread_once(&global_once, global_init);
    e = curl_easy_escape(NULL, s, (int)strlen(s));
    if (!e)
        return NULL;
    r = dd_strdup(e); /* ours: freed with dd_free like everything else */
    curl_free(e);
    return r;
}

const char *dd_http_client_base(const struct dd_http_client *c)
{
    return c->base;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct sink *s = ud;
    size_t len = size * nmemb;
    int r;

    if (s->buf) {
        r = dd_dynbuf_append(s->buf, data, len);
    } else {
        long status = 0;
        curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
        r = status >= 200 && status < 300 ? s->fn(s->ud, data, len) : 0;
    }
    if (r < 0) {
        s->err = r;
        return 0; /* anything but len: curl stops with CURLE_WRITE_ERROR */
    }
    return len;
}

/* CURLOPT_XFERINFOFUNCTION: curl calls it about once a second even while
 * no byte arrives, so a cancel is seen promptly during a quiet watch. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct sink *s = ud;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    if (s->c->cancel && s->c->cancel(s->c->cancel_ud)) {
        s->err = DD_E_CANCELLED;
        return 1;
    }
    return 0;
}

static int translate(CURLcode cr)
{
    switch (cr) {
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_COULDNT_CONNECT:
        return -ECONNREFUSED;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    default:
        return DD_E_LIBRARY;
    }
}

/* Sets every option of one request on the freshly reset handle. */
static CURLcode set_options(struct dd_http_client *c, const char *url, const char *method,
                            const char *body, struct curl_slist *hdr, struct sink *sink)
{
    CURL *h = c->curl;
    CURLcode cr = CURLE_OK;

#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (cr == CURLE_OK)                                                                        \
            cr = curl_easy_setopt(h, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_NOSIGNAL, 1L); /* timeouts without SIGALRM: threads */
    SET(CURLOPT_ERRORBUFFER, c->curl_err);
    SET(CURLOPT_WRITEFUNCTION, on_write);
    SET(CURLOPT_WRITEDATA, sink);
    SET(CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    if (c->timeout_ms > 0)
        SET(CURLOPT_TIMEOUT_MS, c->timeout_ms);
#if LIBCURL_VERSION_NUM >= 0x075500
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    if (c->ca_file)
        SET(CURLOPT_CAINFO, c->ca_file);
    if (c->connect_to)
        SET(CURLOPT_CONNECT_TO, c->connect_to);
    if (c->cert_file) {
        SET(CURLOPT_SSLCERT, c->cert_file);
        SET(CURLOPT_SSLKEY, c->key_file);
    }
    if (strcmp(method, "GET") == 0 && !body) {
        SET(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        SET(CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(method, "POST") == 0 || body) {
            SET(CURLOPT_POSTFIELDS, body ? body : "");
            SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? strlen(body) : 0));
        }
        if (strcmp(method, "POST") != 0)
            SET(CURLOPT_CUSTOMREQUEST, method);
    }
    if (hdr)
        SET(CURLOPT_HTTPHEADER, hdr);
    if (c->cancel) {
        SET(CURLOPT_XFERINFOFUNCTION, on_progress);
        SET(CURLOPT_XFERINFODATA, sink);
        SET(CURLOPT_NOPROGRESS, 0L);
    }
#undef SET
    return cr;
}

static int perform(struct dd_http_client *c, const char *method, const char *path,
                   const char *content_type, const char *body, struct sink *sink, char *errbuf,
                   size_t errlen)
{
    char ct[128];
    struct dd_dynbuf url;
    struct curl_slist *hdr = NULL, *t;
    CURLcode cr;
    long status = 0;
    int r;

    dd_dynbuf_init(&url, DD_HTTP_CLIENT_MAX_URL);
    r = dd_dynbuf_printf(&url, "%s%s", c->base, path);
    if (r < 0) {
        snprintf(errbuf, errlen, "%.200s%.200s: %s", c->base, path,
                 r == DD_E_TOOBIG ? "URL too long" : "out of memory");
        dd_dynbuf_free(&url);
        return r;
    }
    /* curl copies header lines; a failed append returns NULL and keeps the
     * list, so build it all and check once */
    if (body) {
        snprintf(ct, sizeof(ct), "Content-Type: %.100s",
                 content_type ? content_type : "application/json");
        t = curl_slist_append(hdr, ct);
        hdr = t ? t : hdr;
        /* no "Expect: 100-continue" round trip before a JSON body */
        t = t ? curl_slist_append(hdr, "Expect:") : NULL;
        hdr = t ? t : hdr;
        if (!t)
            goto oom;
    }
    if (c->auth) {
        t = curl_slist_append(hdr, c->auth);
        if (!t)
            goto oom;
        hdr = t;
    }

    curl_easy_reset(c->curl);
    c->curl_err[0] = '\0';
    cr = set_options(c, dd_dynbuf_str(&url), method, body, hdr, sink);
    if (cr == CURLE_OK) {
        long opened = 0;
        cr = curl_easy_perform(c->curl);
        if (curl_easy_getinfo(c->curl, CURLINFO_NUM_CONNECTS, &opened) == CURLE_OK && opened > 0)
            c->connections += (unsigned long)opened;
    }
    if (cr == CURLE_OK) {
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
        r = (int)status;
    } else if (cr == CURLE_ABORTED_BY_CALLBACK && sink->err < 0) {
        r = sink->err;
        snprintf(errbuf, errlen, "%s: cancelled", dd_dynbuf_str(&url));
    } else if (cr == CURLE_WRITE_ERROR && sink->err < 0) {
        r = sink->err;
        if (r == DD_E_TOOBIG && sink->buf)
            snprintf(errbuf, errlen, "%s: the reply is larger than %zu bytes", dd_dynbuf_str(&url),
                     sink->buf->cap);
        else
            snprintf(errbuf, errlen, "%s: reading the reply: %s", dd_dynbuf_str(&url),
                     dd_strerror(r));
    } else {
        r = translate(cr);
        snprintf(errbuf, errlen, "%s: %s", dd_dynbuf_str(&url),
                 c->curl_err[0] ? c->curl_err : curl_easy_strerror(cr));
    }
    /* the handle must not point at these after they are gone */
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hdr);
    dd_dynbuf_free(&url);
    return r;

oom:
    curl_slist_free_all(hdr);
    snprintf(errbuf, errlen, "%s: out of memory", dd_dynbuf_str(&url));
    dd_dynbuf_free(&url);
    return -ENOMEM;
}

int dd_http_client_call(struct dd_http_client *c, const char *method, const char *path,
                        const char *json_body, struct dd_dynbuf *reply, char *errbuf, size_t errlen)
{
    struct sink s = {.c = c, .h = c->curl, .buf = reply};

    dd_dynbuf_reset(reply);
    return perform(c, method, path, NULL, json_body, &s, errbuf, errlen);
}

int dd_http_client_call_type(struct dd_http_client *c, const char *method, const char *path,
                             const char *content_type, const char *body, struct dd_dynbuf *reply,
                             char *errbuf, size_t errlen)
{
    struct sink s = {.c = c, .h = c->curl, .buf = reply};

    dd_dynbuf_reset(reply);
    return perform(c, method, path, content_type, body, &s, errbuf, errlen);
}

int dd_http_client_stream(struct dd_http_client *c, const char *method, const char *path,
                          const char *json_body, dd_http_client_data_fn on_data, void *ud,
                          char *errbuf, size_t errlen)
{
    struct sink s = {.c = c, .h = c->curl, .fn = on_data, .ud = ud};

    return perform(c, method, path, NULL, json_body, &s, errbuf, errlen);
}

int dd_http_url_host_port(const char *url, char *host, size_t hlen, char *port, size_t plen,
                          char *errbuf, size_t errlen)
{
    CURLU *u;
    char *h = NULL, *pt = NULL, *scheme = NULL;
    int r = 0;

    pthread_once(&global_once, global_init);
    if (!(u = curl_url()))
        return -ENOMEM;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
        curl_url_get(u, CURLUPART_HOST, &h, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &pt, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        snprintf(errbuf, errlen, "'%.200s': expected an http:// or https:// URL with a host", url);
        r = -EINVAL;
    } else {
        const char *b = h;
        size_t len = strlen(h);
        if (len >= 2 && h[0] == '[' && h[len - 1] == ']') { /* IPv6 literal */
            b++;
            len -= 2;
        }
        if (len >= hlen || strlen(pt) >= plen) {
            snprintf(errbuf, errlen, "'%.200s': the host name is too long", url);
            r = -ENAMETOOLONG;
        } else {
            memcpy(host, b, len);
            host[len] = '\0';
            snprintf(port, plen, "%s", pt);
        }
    }
    curl_free(h);
    curl_free(pt);
    curl_free(scheme);
    curl_url_cleanup(u);
    return r;
}
