/*
 * The Kubernetes API client of the writers; see kubeclient.h.
 */
#include "dedupd/kubeclient.h"

#include <string.h>

#include "common/clock.h"
#include "common/common.h"
#include "dedupd/http/token.h"

static int make_client(struct dd_kubeclient *k, char *errbuf, size_t errlen)
{
    struct dd_http_client_config cc = {
        .base_url = k->src.url,
        .token = k->token,
        .ca_file = k->src.ca_file[0] ? k->src.ca_file : NULL,
        .connect_timeout_ms = k->connect_timeout_ms,
        .timeout_ms = k->timeout_ms,
        .cancel = k->cancel,
        .cancel_ud = k->cancel_ud,
    };
    struct dd_http_client *c = NULL;
    int r = dd_http_client_new(&cc, &c, errbuf, errlen);
    if (r < 0)
        return r;
    dd_http_client_free(k->client);
    k->client = c;
    return 0;
}

int dd_kubeclient_init(struct dd_kubeclient *k, const struct dd_kubeclient_config *c, char *errbuf,
                       size_t errlen)
{
    int r;
    memset(k, 0, sizeof(*k));
    k->src = *c->src;
    k->what = c->what;
    k->token_reread_s = c->token_reread_s > 0 ? c->token_reread_s : 60;
    k->connect_timeout_ms = c->connect_timeout_ms;
    k->timeout_ms = c->timeout_ms;
    k->cancel = c->cancel;
    k->cancel_ud = c->cancel_ud;
    if (k->src.token_file[0] &&
        (r = dd_token_read(k->src.token_file, &k->token, errbuf, errlen)) < 0)
        return r;
    k->token_read_ms = dd_mono_ms();
    if ((r = make_client(k, errbuf, errlen)) < 0) {
        dd_kubeclient_release(k);
        return r;
    }
    return 0;
}

void dd_kubeclient_refresh(struct dd_kubeclient *k, bool force)
{
    char *tok = NULL, err[512];
    if (!k->src.token_file[0] ||
        (!force && dd_mono_ms() - k->token_read_ms < (uint64_t)(k->token_reread_s * 1000.0)))
        return;
    k->token_read_ms = dd_mono_ms();
    if (dd_token_read(k->src.token_file, &tok, err, sizeof(err)) < 0) {
        dd_log_debug("%s: %s (keeping the token read before)", k->what, err);
        return;
    }
    if (k->token && strcmp(tok, k->token) == 0) {
        dd_free(tok);
        return;
    }
    dd_free(k->token);
    k->token = tok;
    if (make_client(k, err, sizeof(err)) < 0)
        dd_log_warning("%s: %s", k->what, err);
}

void dd_kubeclient_release(struct dd_kubeclient *k)
{
    dd_http_client_free(k->client);
    k->client = NULL;
    dd_free(k->token);
    k->token = NULL;
}
