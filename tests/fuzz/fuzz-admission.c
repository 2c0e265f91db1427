/*
 * Fuzz target for the right-sizing webhook's decoder and rewrite
 * (placement/admission): an AdmissionReview from outside bytes, then the
 * rewrite of its pod under a few predictions (none, small, large with an
 * OOM history), in enforce and recommend mode, on static CPU manager nodes
 * or not, and the response. Invariants: a refusal says why (and a uid is
 * only kept when it was readable); a rewrite's patch applies to the pod it
 * was made for; it never touches init containers or GPU resources; after
 * it every changed container's CPU and memory requests are at most its
 * limits; recommend mode changes nothing but annotations; the response
 * echoes the uid and is allowed.
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "placement/admission.h"

static struct dd_rs_prediction pred(int which)
{
    struct dd_rs_prediction p;
    memset(&p, 0, sizeof(p));
    for (int t = 0; t < DD_RS_NTARGETS; t++) {
        p.value[t] = (double)NAN;
        p.source[t] = "none";
    }
    p.history.max_memory_bytes = (double)NAN;
    p.history.last_oom_memory_limit = (double)NAN;
    if (which == 1) {
        p.value[DD_RS_CPU] = 0.2;
        p.value[DD_RS_MEMORY] = 100e6;
        p.value[DD_RS_READ] = 5;
    } else if (which == 2) {
        p.value[DD_RS_CPU] = 37.5;
        p.value[DD_RS_MEMORY] = 300e9;
        p.value[DD_RS_WRITE] = 900;
        p.history.n = 9;
        p.history.max_memory_bytes = 350e9;
        p.history.oom_killed = 1;
        p.history.last_oom_memory_limit = 320e9;
    }
    return p;
}

static bool same(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

/* json_equal, with two absent values equal */
static bool eq(const json_t *a, const json_t *b)
{
    return (!a && !b) || json_equal(a, b);
}

static void check_pod(const json_t *before, const json_t *after, bool recommend)
{
    const json_t *sb = json_object_get(before, "spec"), *sa = json_object_get(after, "spec");
    CHECK(eq(json_object_get(sb, "initContainers"), json_object_get(sa, "initContainers")));
    if (recommend) {
        CHECK(eq(sb, sa));
        return;
    }
    const json_t *cb = json_object_get(sb, "containers"), *ca = json_object_get(sa, "containers");
    CHECK(json_array_size(cb) == json_array_size(ca));
    for (size_t i = 0; i < json_array_size(ca); i++) {
        const json_t *rb = json_object_get(json_array_get(cb, i), "resources");
        const json_t *ra = json_object_get(json_array_get(ca, i), "resources");
        const char *sides[] = {"requests", "limits"};
        for (int s = 0; s < 2; s++) {
            json_t *xb = json_object_get(rb, sides[s]), *xa = json_object_get(ra, sides[s]);
            const char *k;
            json_t *v;
            json_object_foreach(xa, k, v)
            {
                if (strcmp(k, "cpu") != 0 && strcmp(k, "memory") != 0)
                    CHECK(eq(v, json_object_get(xb, k)));
            }
            json_object_foreach(xb, k, v)
            {
                if (strcmp(k, "cpu") != 0 && strcmp(k, "memory") != 0)
                    CHECK(eq(v, json_object_get(xa, k)));
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *doc = json_loadb((const char *)data, size, 0, &je);
    struct dd_adm_review rv;
    char err[512] = "";

    if (!doc)
        return 0;
    if (dd_adm_review_decode(doc, &rv, err, sizeof(err)) < 0) {
        CHECK(err[0] != '\0');
        if (rv.uid[0]) {
            const char *w = err;
            json_t *resp = dd_adm_response(rv.uid, NULL, &w, 1);
            CHECK(resp &&
                  json_is_true(json_object_get(json_object_get(resp, "response"), "allowed")));
            json_decref(resp);
        }
        json_decref(doc);
        return 0;
    }
    CHECK(rv.uid[0] != '\0');
    for (int k = 0; rv.object && k < 12; k++) {
        struct dd_adm_options o;
        struct dd_adm_result r;
        struct dd_rs_prediction p = pred(k % 3);
        struct dd_rs_live live = {(double)NAN, 0.5, 2, 1};
        dd_adm_options_init(&o);
        o.mode = k / 3 % 2 ? DD_ADM_RECOMMEND : DD_ADM_ENFORCE;
        o.no_cpu_limits = k / 6 % 2;
        err[0] = '\0';
        (void)dd_adm_opted_in(&o, rv.ns, rv.object, k % 2 ? "enabled" : NULL);
        if (dd_adm_rewrite(&o, rv.object, &p, &live, k % 2, &r, err, sizeof(err)) < 0) {
            CHECK(err[0] != '\0');
            continue;
        }
        CHECK(json_is_array(r.patch) && json_is_object(r.explanation));
        json_t *copy = json_deep_copy(rv.object);
        CHECK(dd_adm_patch_apply(copy, r.patch, err, sizeof(err)) == 0);
        check_pod(rv.object, copy, o.mode == DD_ADM_RECOMMEND);
        for (size_t i = 0; i < r.n_containers; i++) {
            const struct dd_adm_container *c = &r.containers[i];
            /* what the rewrite set (a pod may come with a request over its
             * limit; a resource without a prediction is left so) */
            bool cpu_set = !same(c->cpu_request[0], c->cpu_request[1]) ||
                           !same(c->cpu_limit[0], c->cpu_limit[1]);
            bool mem_set = !same(c->memory_request[0], c->memory_request[1]) ||
                           !same(c->memory_limit[0], c->memory_limit[1]);
            if (cpu_set && !isnan(c->cpu_request[1]) && !isnan(c->cpu_limit[1]))
                CHECK(c->cpu_request[1] <= c->cpu_limit[1] + 1e-9);
            if (mem_set && !isnan(c->memory_request[1]) && !isnan(c->memory_limit[1]))
                CHECK(c->memory_request[1] <= c->memory_limit[1]);
        }
        json_t *resp = dd_adm_response(rv.uid, r.patch, NULL, 0);
        CHECK(resp);
        json_t *re = json_object_get(resp, "response");
        CHECK(strcmp(json_string_value(json_object_get(re, "uid")), rv.uid) == 0);
        CHECK(json_is_true(json_object_get(re, "allowed")));
        CHECK(!r.changed || json_is_string(json_object_get(re, "patch")));
        json_decref(resp);
        json_decref(copy);
        dd_adm_result_release(&r);
    }
    json_decref(doc);
    return 0;
}
