/*
 * Fuzz target for the pod outcome decoder (placement/rightsize.h:
 * dd_rs_outcome_from_json) on arbitrary bytes, as POST /v1/observations
 * receives them, and for the pod decoder on the same document. Invariants:
 * a refusal names a field; an accepted outcome has a pod_uid and a
 * namespace, no negative or non-finite figure, and its stored form
 * decodes to the same stored form; the history and a prediction take it.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "placement/rightsize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    static struct dd_rs_outcome o, again;
    static struct dd_rs_pod pod;
    char err[512] = "";

    if (!doc)
        return 0;
    if (dd_rs_pod_from_json(doc, NULL, 0, &pod, err, sizeof(err)) < 0)
        CHECK(err[0] != '\0');
    err[0] = '\0';
    int e = dd_rs_outcome_from_json(doc, &o, err, sizeof(err));
    json_decref(doc);
    if (e < 0) {
        CHECK(e == -EINVAL);
        CHECK(err[0] != '\0');
        return 0;
    }
    CHECK(o.pod_uid[0] && o.ns[0]);
    for (int t = 0; t < DD_RS_NTARGETS; t++)
        CHECK(isnan(o.target[t]) || (isfinite(o.target[t]) && o.target[t] >= 0));
    json_t *wire = dd_rs_outcome_to_json(&o);
    CHECK(wire != NULL);
    CHECK(dd_rs_outcome_from_json(wire, &again, err, sizeof(err)) == 0);
    json_t *wire2 = dd_rs_outcome_to_json(&again);
    CHECK(json_equal(wire, wire2));
    json_decref(wire);
    json_decref(wire2);

    struct dd_rs_data *d;
    struct dd_rs_model *m;
    struct dd_rs_prediction p;
    CHECK(dd_rs_data_new(&d) == 0);
    CHECK(dd_rs_data_add(d, &o, 0) == 0);
    CHECK(dd_rs_data_add(d, &o, 1) == 0); /* the same pod again replaces */
    CHECK(dd_rs_data_rows(d) == 1);
    CHECK(dd_rs_model_with_history(NULL, d, NULL, &m) == 0);
    CHECK(dd_rs_predict(m, &o.pod, &o.live, &p) == 0);
    CHECK(p.history.n == 1);
    dd_rs_model_unref(m);
    dd_rs_data_free(d);
    return 0;
}
