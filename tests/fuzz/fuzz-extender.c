/*
 * Fuzz target for what the extender routes decode from outside bytes:
 * ExtenderArgs (placement/extender), the pod inside it (placement/kube's
 * pod resolution against an empty cache) and its dedupd.io/ annotations
 * (placement/profile), then the replies built for it. Invariants: a
 * refusal says why; accepted names are non-empty, bounded and unique; a
 * profile's rates are finite and in range with notes for what was ignored;
 * the filter reply holds every node exactly once (passing or failed) and
 * the prioritize reply every node with an integer score 0..10.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "placement/extender.h"
#include "placement/kube.h"
#include "placement/profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    struct dd_extender_args a;
    char err[512] = "";

    if (!doc)
        return 0;
    if (dd_extender_args_decode(doc, &a, err, sizeof(err)) < 0) {
        CHECK(err[0] != '\0');
        json_t *e = dd_extender_filter_error(err);
        CHECK(e && json_string_length(json_object_get(e, "Error")) > 0);
        json_decref(e);
        json_decref(doc);
        return 0;
    }
    CHECK(json_is_object(a.pod) && a.n <= DD_EXTENDER_MAX_NODES);
    for (size_t i = 0; i < a.n; i++)
        CHECK(a.names[i] && a.names[i][0] && strlen(a.names[i]) < DD_NAME_MAX);

    /* the pod, as the extender resolves it without a cache */
    struct dd_kube *k;
    struct dd_kube_pod kp;
    struct dd_profile_set set;
    struct dd_pod_profile prof;
    CHECK(dd_kube_new(&k, NULL, 0) == 0);
    if (dd_kube_pod_resolve(k, a.pod, &kp, err, sizeof(err)) == 0) {
        dd_profile_set_init(&set);
        dd_profile_resolve(&set, &kp, &prof);
        CHECK(prof.n_claims <= DD_KUBE_MAX_CLAIMS && prof.n_notes <= DD_PROFILE_MAX_NOTES);
        CHECK(isfinite(prof.gpus) && prof.gpus >= 0);
        for (size_t i = 0; i < prof.n_claims; i++) {
            const struct dd_claim_load *c = &prof.claims[i];
            CHECK(isfinite(c->read_mbps) && c->read_mbps >= 0 && c->read_mbps <= 1e6);
            CHECK(isfinite(c->write_mbps) && c->write_mbps >= 0 && c->write_mbps <= 1e6);
            CHECK(isnan(c->duplicate_share) ||
                  (c->duplicate_share >= 0 && c->duplicate_share <= 1));
        }
        json_t *pj = dd_profile_to_json(&prof);
        CHECK(pj != NULL);
        json_decref(pj);
    } else {
        CHECK(err[0] != '\0');
    }
    dd_kube_free(k);

    /* replies: alternate verdicts and scores over the names */
    struct dd_node_score *s = calloc(a.n ? a.n : 1, sizeof(*s));
    CHECK(s != NULL);
    for (size_t i = 0; i < a.n; i++) {
        s[i].node = a.names[i];
        s[i].verdict = i % 3 == 2 ? DD_VERDICT_UNRESOLVABLE : DD_VERDICT_OK;
        s[i].score = (int)(i % 11);
        snprintf(s[i].reason, sizeof(s[i].reason), "dedupd: no_pool: test");
    }
    json_t *f = dd_extender_filter_result(&a, s);
    json_t *pass = a.full_nodes ? json_object_get(json_object_get(f, "Nodes"), "items")
                                : json_object_get(f, "NodeNames");
    CHECK(json_array_size(pass) +
              json_object_size(json_object_get(f, "FailedAndUnresolvableNodes")) ==
          a.n);
    CHECK(json_is_string(json_object_get(f, "Error")));
    json_decref(f);
    json_t *p = dd_extender_prioritize_result(&a, s);
    CHECK(json_array_size(p) == a.n);
    for (size_t i = 0; i < a.n; i++) {
        json_t *sc = json_object_get(json_array_get(p, i), "Score");
        CHECK(json_is_integer(sc) && json_integer_value(sc) >= 0 && json_integer_value(sc) <= 10);
    }
    json_decref(p);
    free(s);
    dd_extender_args_release(&a);
    json_decref(doc);
    return 0;
}
