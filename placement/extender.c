/*
 * The extender's wire format (extender.h).
 */
#include "placement/extender.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

struct named_hash {
    uint64_t h;
    const char *name;
};

static int hash_cmp(const void *a, const void *b)
{
    const struct named_hash *x = a, *y = b;
    return x->h < y->h ? -1 : x->h > y->h;
}

/* Names must be non-empty, within DD_NAME_MAX and unique. Duplicates are
 * found by sorting the names' hashes (integers: at 5,000 names a string
 * sort was a tenth of a request) and comparing the names of equal ones. */
static int check_names(const char **names, size_t n, const char *where, char *errbuf, size_t errlen)
{
    struct named_hash *v;
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
    v = dd_malloc(n * sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        v[i] = (struct named_hash){dd_cluster_name_hash(names[i]), names[i]};
    qsort(v, n, sizeof(*v), hash_cmp);
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0 && v[j - 1].h == v[i].h; j--) {
            if (strcmp(v[j - 1].name, v[i].name) == 0) {
                snprintf(errbuf, errlen, "%s: node %.100s is listed twice", where, v[i].name);
                dd_free(v);
                return -EINVAL;
            }
        }
    }
    dd_free(v);
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
    a.names = dd_calloc(a.n ? a.n : 1, sizeof(*a.names));
    if (!a.names)
        return -ENOMEM;
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
        } else {
            v = json_array_get(names, i);
            if (!json_is_string(v)) {
                snprintf(errbuf, errlen, "NodeNames[%zu]: expected a string", i);
                dd_free(a.names);
                return -EINVAL;
            }
            a.names[i] = json_string_value(v);
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
        else /* a string of the parsed request: valid UTF-8 */
            json_array_append_new(pass, json_stringn_nocheck(a->names[i], strlen(a->names[i])));
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
    json_t *out = json_array();
    for (size_t i = 0; i < a->n; i++) {
        /* built field by field, not with json_pack: at 5,000 nodes parsing the
         * format per node was a fifth of a request. The names are strings of
         * the parsed request, valid UTF-8 already. */
        json_t *o = json_object();
        int score = s[i].score < 0 ? 0 : s[i].score > 10 ? 10 : s[i].score;
        json_object_set_new_nocheck(o, "Host",
                                    json_stringn_nocheck(a->names[i], strlen(a->names[i])));
        json_object_set_new_nocheck(o, "Score", json_integer(score));
        json_array_append_new(out, o);
    }
    return out;
}
