/*
 * kube-scheduler extender v1 on the wire (reference/k8s/extender): the
 * request ExtenderArgs, and the replies ExtenderFilterResult and
 * HostPriorityList. Capitalised keys, as the Go types have no JSON tags.
 *
 * Two modes, as kube-scheduler sends them:
 *   names  (nodeCacheCapable: true)  {"Pod": {...}, "Nodes": null,
 *          "NodeNames": ["a", ...]}; the filter answers NodeNames;
 *   full   {"Pod": {...}, "Nodes": {"metadata": {}, "items": [Node, ...]},
 *          "NodeNames": null}; the filter answers the passing Node objects
 *          as they came.
 * Every requested node is in a prioritize reply, and no other; scores are
 * JSON integers 0..10. Pure: no I/O.
 */
#ifndef DD_PLACEMENT_EXTENDER_H
#define DD_PLACEMENT_EXTENDER_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "placement/score.h"

struct dd_extender_args {
    json_t *pod;        /* borrowed from the request document */
    bool full_nodes;    /* Nodes.items given (full mode) */
    json_t *node_items; /* full mode: the items array (borrowed) */
    size_t n;           /* candidate nodes */
    const char **names; /* n names, borrowed from the document (dd_malloc'd array) */
    json_t **values;    /* the n names as the document's string values (borrowed;
                         * in the same allocation as names): replies reuse them */
};

/* Decodes doc (kept alive by the caller). -EINVAL with errbuf naming the
 * key ("NodeNames[3]: ...") on a malformed request: no Pod object, neither
 * or a malformed node list, a name empty, too long or repeated, more than
 * DD_EXTENDER_MAX_NODES nodes. */
int dd_extender_args_decode(json_t *doc, struct dd_extender_args *ret, char *errbuf, size_t errlen);
void dd_extender_args_release(struct dd_extender_args *a);

/* ExtenderFilterResult: passing nodes (every verdict but UNRESOLVABLE) in
 * NodeNames (names mode) or Nodes.items (full mode); the others in
 * FailedAndUnresolvableNodes with their reason; FailedNodes empty; Error "". */
json_t *dd_extender_filter_result(const struct dd_extender_args *a, const struct dd_node_score *s);
/* ExtenderFilterResult with Error set (a malformed request: HTTP 200). */
json_t *dd_extender_filter_error(const char *message);
/* HostPriorityList: [{"Host": name, "Score": 0..10}, ...] in request order.
 * The Host strings are the request's own values (a reference each, no
 * copy): the reply keeps them alive after the request document goes. */
json_t *dd_extender_prioritize_result(const struct dd_extender_args *a,
                                      const struct dd_node_score *s);

#endif
