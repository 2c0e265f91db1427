/*
 * The extender's wire format (extender.h).
 */
#include "placement/extender.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

/* Names must be non-empty, within DD_NAME_MAX and unique. Duplicates are
 * found with an open-addressing set of the names' hashes (a slot holds an
 * index + 1), comparing the names of equal hashes: O(n), where sorting the
 * hashes was a twentieth of a prioritize at 5,000 names. */
static int check_names(const char **names, size_t n, const char *where, char *errbuf, size_t errlen)
{
    uint32_t *slots;
    uint64_t *hashes;
    size_t size = 16, mask;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        if (len == 0 || len >= DD_NAME_MAX) {
            snprintf(errbuf, errlen, "%s[%zu]: a node name must be 1..%u bytes", where, i,
                     DD_NAME_MAX - 1);
            return -EINVAL;
        }
    }
    if (n < 2)
        return 0;
    while (size < 2 * n)
        size *= 2;
    mask = size - 1;
    slots = dd_calloc(size, sizeof(*slots));
    hashes = dd_malloc(n * sizeof(*hashes));
    if (!slots || !hashes) {
        dd_free(slots);
        dd_free(hashes);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t h = dd_cluster_name_hash(names[i]);
        size_t k = (size_t)h & mask;
        hashes[i] = h;
        for (; slots[k]; k = (k + 1) & mask) {
            size_t j = slots[k] - 1;
            if (hashes[j] == h && strcmp(names[j], names[i]) == 0) {
                snprintf(errbuf, errlen, "%s: node %.100s is listed twice", where, names[i]);
                dd_free(slots);
                dd_free(hashes);
                return -EINVAL;
            }
        }
        slots[k] = (uint32_t)(i + 1);
    }
    dd_free(slots);
    dd_free(hashes);
    return 0;
}

int dd_extender_args_decode(json_t *doc, struct dd_extender_args *ret, char *errbuf, size_t errlen)
{
    json_t *pod, *nodes, *names, *items, *v;
    struct dd_extender_args a = {0};
    size_t i;
    int r;

    memset(ret, 0, sizeof(*ret));
    if (!json_is_object(doc)) {
        snprintf(errbuf, errlen, "the body must be a JSON object (ExtenderArgs)");
        return -EINVAL;
    }
    pod = json_object_get(doc, "Pod");
    if (!json_is_object(pod) || !json_is_object(json_object_get(pod, "metadata"))) {
        snprintf(errbuf, errlen, "Pod: expected a Pod object with metadata");
        return -EINVAL;
    }
    nodes = json_object_get(doc, "Nodes");
    names = json_object_get(doc, "NodeNames");
    a.pod = pod;
    if (nodes && !json_is_null(nodes)) {
        items = json_object_get(nodes, "items");
        if (!json_is_object(nodes) || !(json_is_array(items) || json_is_null(items) || !items)) {
            snprintf(errbuf, errlen, "Nodes: expected a NodeList {\"items\": [...]}");
            return -EINVAL;
        }
        a.full_nodes = true;
        a.node_items = json_is_array(items) ? items : NULL;
        a.n = a.node_items ? json_array_size(items) : 0;
    } else if (names && !json_is_null(names)) {
        if (!json_is_array(names)) {
            snprintf(errbuf, errlen, "NodeNames: expected an array of node names");
            return -EINVAL;
        }
        a.n = json_array_size(names);
    } else {
        snprintf(errbuf, errlen, "neither Nodes nor NodeNames is set");
        return -EINVAL;
    }
    if (a.n > DD_EXTENDER_MAX_NODES) {
        snprintf(errbuf, errlen, "%zu nodes: at most %u per request", a.n, DD_EXTENDER_MAX_NODES);
        return -EINVAL;
    }
    /* one block: the n name pointers, then the n values */
    a.names = dd_calloc(a.n ? 2 * a.n : 1, sizeof(void *));
    if (!a.names)
        return -ENOMEM;
    a.values = (json_t **)(void *)(a.names + a.n);
    for (i = 0; i < a.n; i++) {
        if (a.full_nodes) {
            v = json_array_get(a.node_items, i);
            json_t *nm = json_object_get(json_object_get(v, "metadata"), "name");
            if (!json_is_string(nm)) {
                snprintf(errbuf, errlen, "Nodes.items[%zu].metadata.name: expected a string", i);
                dd_free(a.names);
                return -EINVAL;
            }
            a.names[i] = json_string_value(nm);
            a.values[i] = nm;
        } else {
            v = json_array_get(names, i);
            if (!json_is_string(v)) {
                snprintf(errbuf, errlen, "NodeNames[%zu]: expected a string", i);
                dd_free(a.names);
                return -EINVAL;
            }
            a.names[i] = json_string_value(v);
            a.values[i] = v;
        }
    }
    r = check_names(a.names, a.n, a.full_nodes ? "Nodes.items" : "NodeNames", errbuf, errlen);
    if (r < 0) {
        dd_free(a.names);
        return r;
    }
    *ret = a;
    return 0;
}

void dd_extender_args_release(struct dd_extender_args *a)
{
    dd_free(a->names);
    memset(a, 0, sizeof(*a));
}

json_t *dd_extender_filter_result(const struct dd_extender_args *a, const struct dd_node_score *s)
{
    json_t *pass = json_array(), *failed = json_object(), *out;
    for (size_t i = 0; i < a->n; i++) {
        if (s[i].verdict == DD_VERDICT_UNRESOLVABLE)
            json_object_set_new(failed, a->names[i], json_string(s[i].reason));
        else if (a->full_nodes)
            json_array_append(pass, json_array_get(a->node_items, i));
        else /* the request's own string value */
            json_array_append(pass, a->values[i]);
    }
    if (a->full_nodes)
        out = json_pack("{s:{s:{}, s:o}, s:n}", "Nodes", "metadata", "items", pass, "NodeNames");
    else
        out = json_pack("{s:n, s:o}", "Nodes", "NodeNames", pass);
    json_object_set_new(out, "FailedNodes", json_object());
    json_object_set_new(out, "FailedAndUnresolvableNodes", failed);
    json_object_set_new(out, "Error", json_string(""));
    return out;
}

json_t *dd_extender_filter_error(const char *message)
{
    json_t *e = json_string(message);
    if (!e) /* not UTF-8 */
        e = json_string("malformed ExtenderArgs");
    return json_pack("{s:n, s:n, s:n, s:n, s:o}", "Nodes", "NodeNames", "FailedNodes",
                     "FailedAndUnresolvableNodes", "Error", e);
}

json_t *dd_extender_prioritize_result(const struct dd_extender_args *a,
                                      const struct dd_node_score *s)
{
    /* Built field by field with the nocheck setters (json_pack parsed its
     * format per node), borrowing the request's name values and one
     * integer per score value: at 5,000 nodes the copies and the integers
     * were a third of building the reply. */
    json_t *out = json_array(), *scores[11] = {NULL};
    if (!out)
        return NULL;
    for (size_t i = 0; i < a->n; i++) {
        json_t *o = json_object();
        int score = s[i].score < 0 ? 0 : s[i].score > 10 ? 10 : s[i].score;
        if (!scores[score])
            scores[score] = json_integer(score);
        if (!o || !scores[score] || json_object_set_nocheck(o, "Host", a->values[i]) < 0 ||
            json_object_set_nocheck(o, "Score", scores[score]) < 0) {
            json_decref(o);
            o = NULL;
        }
        if (!o || json_array_append_new(out, o) < 0) { /* append_new drops o on failure */
            json_decref(out);
            out = NULL;
            break;
        }
    }
    for (size_t k = 0; k < DD_ARRAY_SIZE(scores); k++)
        json_decref(scores[k]);
    return out;
}
