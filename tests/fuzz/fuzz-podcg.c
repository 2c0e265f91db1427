/*
 * Fuzz target for the pod outcome decoders: the input goes to the
 * memory.stat parser (a cgroup file) and, when it is JSON, to the Pod
 * decoder (the node role's pod watch) and on to the outcome body.
 * Checked:
 *   - memory.stat: 0 or DD_E_PARSE / DD_E_RANGE; on failure the output is
 *     untouched and the message printable; err NULL gives the same code;
 *   - Pod: 0 or a documented code with a non-empty message and the output
 *     untouched; on success the strings are terminated, requests and
 *     limits are objects of quantity strings that parse again, the reason
 *     fits, a copy is equal, and the outcome body is an object whose
 *     numbers are finite and whose pod_uid is the pod's.
 * A violated invariant aborts.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <jansson.h>

#include "common/error.h"
#include "dedupd/node/node.h"
#include "dedupd/node/podmeta.h"
#include "fuzz.h"
#include "placement/kube.h"

#define MAX_INPUT (64u * 1024u)

static bool printable(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    }
    return true;
}

static void check_quantities(const json_t *o)
{
    const char *k;
    json_t *v;
    CHECK(json_is_object(o));
    json_object_foreach((json_t *)(uintptr_t)o, k, v)
    {
        uint64_t q;
        CHECK(json_is_string(v));
        CHECK(dd_kube_quantity_milli(json_string_value(v), &q) == 0 ||
              dd_kube_quantity(json_string_value(v), &q) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct dd_cgroup_memstat ms = {.anon = 7}, ms2;
    struct dd_parse_error e = {0};
    int r, r2;

    if (size > MAX_INPUT)
        return 0;
    r = dd_node_cgroup_memstat_parse(text, size, &ms, &e);
    r2 = dd_node_cgroup_memstat_parse(text, size, &ms2, NULL);
    CHECK(r == r2);
    CHECK(r == 0 || r == DD_E_PARSE || r == DD_E_RANGE);
    if (r < 0) {
        CHECK(ms.anon == 7);
        CHECK(printable(e.message) && e.message[0]);
    } else {
        CHECK(memcmp(&ms, &ms2, sizeof(ms)) == 0);
    }

    json_t *doc = json_loadb(text, size, JSON_DECODE_ANY, NULL);
    if (!doc)
        return 0;
    struct dd_pod_meta m = {.exit_code = 42}, c;
    char err[256] = "";
    r = dd_pod_meta_from_json(doc, &m, err, sizeof(err));
    CHECK(r == 0 || r == DD_E_PARSE || r == DD_E_RANGE || r == DD_E_TOOBIG || r == -ENOMEM);
    if (r < 0) {
        CHECK(m.exit_code == 42 && !m.requests);
        CHECK(r == -ENOMEM || err[0]);
        json_decref(doc);
        return 0;
    }
    CHECK(memchr(m.uid, 0, sizeof(m.uid)) && m.uid[0]);
    CHECK(memchr(m.owner_name, 0, sizeof(m.owner_name)));
    CHECK(memchr(m.reason, 0, sizeof(m.reason)));
    check_quantities(m.requests);
    check_quantities(m.limits);
    CHECK(json_is_object(m.annotations));
    CHECK(dd_pod_meta_copy(&m, &c) == 0);
    CHECK(json_equal(c.requests, m.requests) && json_equal(c.annotations, m.annotations));
    dd_pod_meta_release(&c);

    struct dd_pod_usage u = {.first_seen = 1e9,
                             .last_seen = 1e9 + 5,
                             .reads = 2,
                             .peak_cpu_cores = 1.5,
                             .has_working_set = true,
                             .peak_working_set = 1u << 20,
                             .has_memory_peak = true,
                             .memory_peak = 2u << 20,
                             .has_io = true,
                             .read_bytes = 1000000,
                             .write_bytes = 1};
    snprintf(u.uid, sizeof(u.uid), "cg");
    json_t *o = dd_pod_outcome_json(&u, &m, "n", (double)NAN);
    CHECK(json_is_object(o));
    CHECK(strcmp(json_string_value(json_object_get(o, "pod_uid")), m.uid) == 0);
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        if (json_is_number(v))
            CHECK(isfinite(json_number_value(v)));
    }
    CHECK(json_number_value(json_object_get(o, "finished_at")) >=
          json_number_value(json_object_get(o, "started_at")));
    json_decref(o);
    dd_pod_meta_release(&m);
    json_decref(doc);
    return 0;
}
