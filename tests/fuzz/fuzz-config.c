/*
 * Fuzz target for the config file's decoder (dd_config_from_json,
 * dedupd/config.h) on arbitrary bytes, loaded as dd_config_file loads
 * them. Invariants: a refusal is "config NAME: ..." naming a key; an
 * accepted config keeps every value in its range and every string
 * terminated; written back as a config file it decodes to the same
 * configuration; when dd_config_check accepts it, it is accepted again and
 * renders as JSON.
 */
#include <string.h>

#include <jansson.h>

#include "common/common.h"
#include "dedupd/config.h"
#include "fuzz.h"

/* clang-format off */
#define STRS(X)                                                                                    \
    X(listen) X(data_dir) X(source) X(proc_root) X(sys_root) X(token_file) X(tls_cert)           \
    X(tls_key) X(tls_client_ca) X(log_level) X(prior_file) X(node_name) X(placement_url)         \
    X(placement_token_file)
/* clang-format on */

static void strings_terminated(const struct dd_config *c)
{
#define TERM(f) CHECK(memchr(c->f, '\0', sizeof(c->f)) != NULL);
    STRS(TERM)
#undef TERM
    for (size_t i = 0; i < c->n_estimate_roots; i++)
        CHECK(memchr(c->estimate_roots[i], '\0', sizeof(c->estimate_roots[i])) != NULL);
    for (size_t i = 0; i < c->n_pools; i++) {
        CHECK(memchr(c->pools[i].volume, '\0', sizeof(c->pools[i].volume)) != NULL);
        CHECK(memchr(c->pools[i].pool, '\0', sizeof(c->pools[i].pool)) != NULL);
    }
}

/* c as a config file's document: every key the file may hold. */
static json_t *file_form(const struct dd_config *c)
{
    json_t *o = json_object(), *roots = json_array(), *pools = json_object();
#define PUT(f) json_object_set_new(o, #f, json_string(c->f));
    STRS(PUT)
#undef PUT
    json_object_set_new(o, "role", json_string(dd_role_name(c->role)));
    json_object_set_new(o, "interval", json_real(c->interval));
    json_object_set_new(o, "retention_days", json_integer(c->retention_days));
    json_object_set_new(o, "min_train_samples", json_integer(c->min_train_samples));
    json_object_set_new(o, "retrain_every", json_integer(c->retrain_every));
    json_object_set_new(o, "http_threads", json_integer(c->http_threads));
    json_object_set_new(o, "stale_after", json_real(c->stale_after));
    json_object_set_new(o, "forget_after", json_real(c->forget_after));
    for (size_t i = 0; i < c->n_estimate_roots; i++)
        json_array_append_new(roots, json_string(c->estimate_roots[i]));
    json_object_set_new(o, "estimate_roots", roots);
    for (size_t i = 0; i < c->n_pools; i++)
        json_object_set_new(pools, c->pools[i].volume, json_string(c->pools[i].pool));
    json_object_set_new(o, "pools", pools);
    return o;
}

static bool same(const struct dd_config *a, const struct dd_config *b)
{
#define EQ(f)                                                                                      \
    if (strcmp(a->f, b->f) != 0)                                                                   \
        return false;
    STRS(EQ)
#undef EQ
    if (a->role != b->role || a->interval != b->interval ||
        a->retention_days != b->retention_days || a->min_train_samples != b->min_train_samples ||
        a->retrain_every != b->retrain_every || a->http_threads != b->http_threads ||
        a->stale_after != b->stale_after || a->forget_after != b->forget_after ||
        a->n_estimate_roots != b->n_estimate_roots || a->n_pools != b->n_pools)
        return false;
    for (size_t i = 0; i < a->n_estimate_roots; i++)
        if (strcmp(a->estimate_roots[i], b->estimate_roots[i]) != 0)
            return false;
    for (size_t i = 0; i < a->n_pools; i++)
        if (strcmp(a->pools[i].volume, b->pools[i].volume) != 0 ||
            strcmp(a->pools[i].pool, b->pools[i].pool) != 0)
            return false;
    return true;
}

/* Invariants of a configuration the decoder accepted. */
static void accepted(struct dd_config *c, struct dd_config *again)
{
    char err[512] = "";

    CHECK(c->role == DD_ROLE_ALL || c->role == DD_ROLE_NODE || c->role == DD_ROLE_PLACEMENT);
    CHECK(c->interval >= 0.01 && c->interval <= 3600);
    CHECK(c->retention_days <= 3650 && c->http_threads >= 1 && c->http_threads <= 256);
    CHECK(c->min_train_samples >= 1 && c->retrain_every >= 1);
    CHECK(c->stale_after >= 0 && c->forget_after >= 1);
    CHECK(c->n_estimate_roots <= DD_CONFIG_MAX_ESTIMATE_ROOTS);
    CHECK(c->n_pools <= DD_MAX_VOLUMES_PER_NODE);
    strings_terminated(c);
    for (size_t i = 0; i < c->n_pools; i++) {
        CHECK(c->pools[i].volume[0] && c->pools[i].pool[0]);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(c->pools[i].volume, c->pools[j].volume) != 0);
    }

    /* the file form decodes to the same configuration */
    json_t *form = file_form(c);
    char *text = json_dumps(form, JSON_COMPACT);
    CHECK(text != NULL);
    json_t *back = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    CHECK(back != NULL);
    free(text);
    json_decref(form);
    dd_config_defaults(again);
    CHECK(dd_config_from_json(again, "again.json", back, err, sizeof(err)) == 0);
    CHECK(same(c, again));
    json_decref(back);

    /* a configuration the check accepts stays accepted, and renders */
    if (dd_config_check(c, err, sizeof(err)) == 0) {
        CHECK(dd_config_check(c, err, sizeof(err)) == 0);
        char *s = dd_config_json(c);
        CHECK(s != NULL);
        free(s);
    } else {
        CHECK(err[0] != '\0');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    struct dd_config *c, *again;
    char err[512] = "";

    if (!doc)
        return 0;
    c = dd_malloc(sizeof(*c));
    again = dd_malloc(sizeof(*again));
    CHECK(c && again);
    dd_config_defaults(c);
    if (dd_config_from_json(c, "fuzz.json", doc, err, sizeof(err)) < 0) {
        CHECK(strncmp(err, "config fuzz.json: ", 18) == 0);
        CHECK(err[18] != '\0');
        CHECK(!json_is_object(doc) || strchr(err + 18, '\'') || strstr(err, "pool") ||
              strstr(err, " is longer than "));
        goto out;
    }
    CHECK(json_is_object(doc) && err[0] == '\0');
    accepted(c, again);
out:
    json_decref(doc);
    dd_free(c);
    dd_free(again);
    return 0;
}
